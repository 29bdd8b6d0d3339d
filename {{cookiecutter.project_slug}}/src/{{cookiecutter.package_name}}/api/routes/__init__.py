"""One module per group of endpoints; `main` mounts them."""
