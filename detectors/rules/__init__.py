"""Rule packs rendered from the detection specs: Suricata rules and Sigma rules.

``context`` turns specs and policy into template data, ``render`` is the
sandboxed Jinja2 environment with per-language escaping, ``suricata`` and
``sigma`` are the two parts of a pack, ``pack`` renders and writes a whole
pack, ``matrix`` builds the coverage matrix. Nothing here inspects traffic.
"""
