"""ROS 1 and ROS 2 bags (.bag, MCAP, sqlite3) to the native layout, without ROS (see docs/datasets.md, "Bags")."""

from distillery.ingest.bags.extract import BagSettings, extract_bag
from distillery.ingest.bags.source import BagError, open_bag

__all__ = ["BagError", "BagSettings", "extract_bag", "open_bag"]
