"""The only place that talks to the kernel through ctypes: linux.py (real syscalls),
libseccomp.py (the libseccomp binding) and fake.py (a recording stand-in for tests)."""
