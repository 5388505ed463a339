"""The only place that talks to the kernel through ctypes: linux.py (real), fake.py (tests)."""
