"""dockee's bridge network: a CNI plugin (plugin.py) and dockee-shim's `network` verbs."""
