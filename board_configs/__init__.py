"""psqs.board_configs: the PYNQ boards psqs can target, one YAML file per board."""
