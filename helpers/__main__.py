"""`python -m helpers [--model ...] [--figures DIR]`: run the lecture's three parts and print a summary."""
from .cli import main

main()
