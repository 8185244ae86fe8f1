"""python -m services.workspace: run the workspace (TRISAM_HTTP_PORT, default 8005)."""

from .app import serve

serve()
