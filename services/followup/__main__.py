from shared.platform.runtime import serve

from .app import spec

serve(spec)
