# A package, so this folder's conftest.py is imported as `deploy.conftest` and does not
# replace the `conftest` module that tests elsewhere import their helpers from.
