"""`python -m helpers [--model ...] [--figures DIR]`: run the lecture's three parts and print a summary."""
from .lecture import main

main()
