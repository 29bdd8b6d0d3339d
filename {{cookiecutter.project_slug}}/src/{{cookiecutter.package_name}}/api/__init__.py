"""The prediction service: FastAPI over the exported champion, with no training stack loaded."""
