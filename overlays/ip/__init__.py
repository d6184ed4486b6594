"""psqs.overlays.ip: the project's own Vivado IP (each a sub-package with HDL and IP-XACT)."""
