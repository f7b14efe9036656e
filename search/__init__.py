"""The discovery engine: proxy tasks, evaluation, mutation, regularized evolution on Ray,
the run store, funnel selection and reports (paper-notes section 3)."""

from .run import run  # noqa: E402,F401  search.run(config): a search run (ray is imported only when it starts)
