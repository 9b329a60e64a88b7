"""Code that runs on the nodes: wwclient.py, one standard-library file importing nothing of wwstatic."""
