"""cefrtune: turn a CEFR word list into a level-appropriate Turkish sentence generator.

Stages, one module each: `data` (validate, stats, split), `train`, `evaluate`, `generate`,
`merge`, `report`, `serve`, `export`, `rate`; `run` (the whole pipeline) and `cli` (a thin
argument parser) call them. Pieces two stages share sit in modules of their own below them
(docs/architecture.md has the map).
"""

__version__ = "0.1.0"
