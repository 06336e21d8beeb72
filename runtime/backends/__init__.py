"""One module per artifact kind; each defines a `runtime.base.Runner` subclass (see `runtime.loader.BACKENDS`)."""
