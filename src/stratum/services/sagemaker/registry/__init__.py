"""The SageMaker model registry: model package groups, model packages (versioned and unversioned),
group resource policies and the approval-change records events are built from.

No HTTP here: ``store`` works on an open connection, ``views`` renders rows in the API's shapes,
``refs`` parses the names and ARNs callers pass. The provider (``api``) authorizes; the
pipeline step handlers (``steps``) reuse the same store functions.
"""
