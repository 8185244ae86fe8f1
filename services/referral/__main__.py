from shared.runtime import serve

from .app import spec

serve(spec)
