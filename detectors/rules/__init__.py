"""Rule packs rendered from the detection specs: Suricata rules and Sigma rules.

``context`` turns specs and policy into template data, ``render`` is the
sandboxed Jinja2 environment with per-language escaping, ``suricata`` and
``sigma`` are the two parts of a pack, ``pack`` renders and writes a whole
pack, ``matrix`` builds the coverage matrix, ``push`` stores the Sigma queries in
Elasticsearch and writes the Kibana import file (index names and the connection from
``detectors.es``; nothing here imports ``detectors.hunt``). Nothing here inspects traffic.
"""
