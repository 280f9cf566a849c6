# A package: its modules import each other (`from .files import ...`).
