"""pyruntime: an OCI runtime-spec container runtime, runc-compatible on the command line."""

__version__ = "0.1.0"
OCI_VERSION = "1.2.0"
