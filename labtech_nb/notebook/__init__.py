"""The notebook layer: the run dashboard, background-run controls, the cache browser and ``%labtech`` magics.

Importing it requires IPython and ipywidgets (``pip install labtech_nb[jupyter]``).
"""
