"""Grading a class: run every student's exercise notebook in a kernel of its own, and report what the class
got wrong (`python -m helpers.grade DIR`, `make grade DIR=...`; README, "Teaching a class").

    submissions   who handed in which notebook (DIR/student/NN_name.ipynb), read before anything runs
    cells         which cells a grading run needs (the exercises, their checks, what they use)
    kernel        one notebook in its own kernel, cell by cell: restart on a time-out or a death, outputs capped
    warm          kernels forked from one process that has imported the kit (seconds instead of a minute each)
    pool          many notebooks at a time, each in its own working folder, killed at its time limit
    outcomes      one Outcome per student and exercise (from the checks' $KIT_CHECK_LOG lines); the CSV tables
    page          the class report: one self-contained HTML page (per exercise: passed, top mistakes, hints)
    demo          a generated class (right answers, named mistakes, empty, crash, loop, vandal) to try it on
"""
