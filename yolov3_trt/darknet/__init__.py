"""Darknet file formats: cfg text, typed layers, built-in cfgs and .weights (numpy only)."""
from .cfg import DarknetCfg, Section, format_cfg, parse_cfg, parse_cfg_text, write_cfg
from .layers import Network, YoloHead, build_network

__all__ = ["DarknetCfg", "Section", "Network", "YoloHead", "build_network", "format_cfg", "parse_cfg",
           "parse_cfg_text", "write_cfg"]
