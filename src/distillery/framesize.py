"""The frame size every stage shares: 240 rows x 320 columns.

Ingest stores frames at it (ingest.height / ingest.width when the config does
not say), `distillery synth` renders worlds at it, and the deployed ONNX graph
takes exactly it (distillery.deploy.spec). One definition, imported by all of
them, keeps the three in step; this module imports nothing, so any stage may
import it without an import cycle.
"""

HEIGHT, WIDTH = 240, 320
