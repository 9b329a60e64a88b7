"""Image source kinds, one module each; `toolchain.image.registry` maps kind to object."""
