"""OS images: each kind of source read into archive entries, the kernel found, the initrd written."""
