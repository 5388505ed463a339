"""dockee-shim: a daemonless docker-like front end.

It owns images, bundles, names, logs, networks and the monitor of detached containers, and
reaches an OCI runtime only through that runtime's command line.  Nothing here imports the
runtime's core (pyruntime.* outside pyruntime.dockee), and the core knows nothing of this.
"""
