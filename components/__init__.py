"""kfp components: one per file, ``verb_noun.py``, each a thin wrapper over one call into ``mlcycle``.

Components are Lightweight Python Components run in the project image (``COMPONENT_IMAGE``), with
``install_kfp_package=False`` and no ``packages_to_install``: the image already has mlcycle and kfp.
Imports happen inside the body, because kfp ships only the function's source to the step.
"""
