"""Security of a deployment: TLS, node keys and signed requests, user tokens, audit log.

What is protected against whom is the README's "Security model"; the pieces:

- :mod:`~fedlab.deploy.security.tls`: development certificates (``fedlab certs``) and
  gRPC credentials;
- :mod:`~fedlab.deploy.security.keys`: Ed25519 key pairs (``fedlab keys``) for SuperNodes
  and bundle signers;
- :mod:`~fedlab.deploy.security.requests`: signed SuperNode requests and their checks;
- :mod:`~fedlab.deploy.security.access`: who is calling (gates and callers, roles);
- :mod:`~fedlab.deploy.security.audit`: the SuperLink's append-only audit log;
- :mod:`~fedlab.deploy.security.settings`: what a client uses to connect.
"""

from fedlab.deploy.security.settings import INSECURE, ClientSecurity

__all__ = ["ClientSecurity", "INSECURE"]
