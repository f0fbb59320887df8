"""Stage 3, the manifest: merge per-shard files into manifest.h5 / manifest.jsonl, and read them.

Modules: `schema` (fields, layout, versions), `merge` (the `merge_manifest`
rule), `reader` (the `Manifest` API used by training and evaluation). The names
below are the package's public API; generic file I/O (atomic writes, JSON lines)
is `distillery.atomic`.
"""

from distillery.manifest.reader import Manifest, manifest_records, open_manifest, open_shard
from distillery.manifest.schema import (BOX_COLUMNS, COMPRESSION_LEVEL, IMAGE_FIELDS, LAYER_SCHEMA_NAME, ROW_FIELDS, SCHEMA_NAME,
                                        SCHEMA_VERSION, SOURCE_FIELD, INPUT_SIZE, STRING_FIELDS, TEACHER_SLOTS,
                                        ImageField, check_schema, create_boxes, compression, create_layer,
                                        create_layout)

__all__ = [
    "BOX_COLUMNS", "COMPRESSION_LEVEL", "IMAGE_FIELDS", "INPUT_SIZE", "LAYER_SCHEMA_NAME", "SOURCE_FIELD", "TEACHER_SLOTS", "ROW_FIELDS",
    "SCHEMA_NAME", "SCHEMA_VERSION",
    "STRING_FIELDS", "ImageField", "Manifest", "check_schema", "create_boxes", "create_layer",
    "create_layout", "manifest_records", "open_manifest", "open_shard", "compression",
]
