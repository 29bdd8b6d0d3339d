"""No usage data leaves the machine: the opt-outs of the libraries that would send it.

MLflow 3, onnxruntime (its Linux wheels, 1.2x on), Great Expectations and DVC report usage to
their makers by default, and MLflow and onnxruntime keep an installation id (and onnxruntime
a queue of unsent events) under the home directory. A project that runs offline, on data its
users may not be free to share, makes no calls they did not ask for. Each value is a default:
set the variable yourself to opt back in (MLFLOW_DISABLE_TELEMETRY=false, ...).
"""

from __future__ import annotations

import os

OPT_OUTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "ORT_DISABLE_TELEMETRY": "1",
    "GX_ANALYTICS_ENABLED": "false",
    # `retrain` runs dvc; .dvc/config says the same (core.analytics) for dvc run by hand.
    "DVC_NO_ANALYTICS": "true",
}


def opt_out() -> None:
    """Set each library's opt-out in this process (and its children), unless already set.

    Call before the library is imported: MLflow and onnxruntime read theirs once.
    """
    for name, value in OPT_OUTS.items():
        os.environ.setdefault(name, value)
