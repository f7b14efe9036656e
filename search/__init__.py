"""The discovery engine: proxy tasks, evaluation, mutation, regularized evolution on Ray,
the run store, funnel selection and reports (paper-notes section 3)."""
