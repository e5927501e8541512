"""AWS RAM: resource shares, their resources and principals, invitations and managed permissions.

Other services ask ``stratum.services.ram.access`` what an active share grants a consumer account.
"""
