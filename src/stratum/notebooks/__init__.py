"""Notebook instances: a JupyterLab server per InService instance, its volume, lifecycle scripts,
its role's credentials and the presigned-URL proxy in front of it."""
