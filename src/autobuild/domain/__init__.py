"""The core: plain Python, standard library only, no I/O."""
