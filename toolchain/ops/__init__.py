"""Running a cluster: showing nodes, status from the access log, discovery, power, serving."""
