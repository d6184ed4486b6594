"""psqs.overlays: stage 3, block designs and overlay packages (Vivado build or emulation build)."""
