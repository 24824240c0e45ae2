"""cefrtune: turn a CEFR word list into a level-appropriate Turkish sentence generator.

Stages, one module each: `data` (validate, stats, split), `train`, `evaluate`, `generate`,
`merge`, `report`, `run` (the whole pipeline). `cli` is a thin argument parser over them.
"""

__version__ = "0.1.0"
