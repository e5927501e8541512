"""Amazon S3: buckets, objects, versioning, multipart uploads and bucket policies.

Metadata lives in the database (``tables``), object bytes in a filesystem blob store
(``objectstore``); the provider is assembled from per-area mixins in ``provider``.
"""
