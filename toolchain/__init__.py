"""wwstatic: compile a cluster definition into the static files that boot it."""

__version__ = "0.1.0"
