"""The build of output/: the plan, the doit tasks, blobs, pointers, gc, DHCP, nginx and ISO files."""
