"""The discovery engine: proxy tasks, evaluation, mutation, regularized evolution on Ray,
the run store, funnel selection and reports (paper-notes section 3).

    import search
    summary = search.run(search.load_config("quick", minutes=1.0))
    table = search.bench(["lion", "adamw"], ["char_lm", "digits_mlp@10", "tiny_gpt"], seeds=3)
"""

from .compare import bench  # noqa: F401
from .config import load_config  # noqa: F401
from .run import run  # noqa: F401  (ray is imported only when a run starts)
