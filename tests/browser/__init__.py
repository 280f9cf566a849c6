# A package: the tests import constants from `browser.conftest`.
