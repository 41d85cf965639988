"""The operations the HTTP API exposes, composed from endpoints, store, models and deployments.

Routes parse HTTP and render; these hold the order of the steps (validate,
store, download, deploy) so the rules stay in one place each.
"""
