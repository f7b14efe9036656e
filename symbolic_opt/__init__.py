"""symbolic-opt: optimizers as small symbolic programs, compiled to fast torch updates.

    from symbolic_opt import Lion                   # drop-in for lion-pytorch's Lion
    from symbolic_opt import parse, analyze, SymbolicOptimizer

See README.md for the language and the search.
"""

from .analysis import Analysis, analyze
from .compiler import CompiledProgram, compile_program
from .errors import ProgramError
from .ir import Const, Program, Statement, Var
from .kinds import Kind
from .optimizer import SymbolicOptimizer
from .optimizers import SGD, Adagrad, Adam, AdamW, Lion, RMSprop
from .parser import parse, parse_file
from .printer import print_program

__all__ = [
    "SGD", "Adagrad", "Adam", "AdamW", "Analysis", "CompiledProgram", "Const", "Kind", "Lion", "Program", "ProgramError",
    "RMSprop", "Statement", "SymbolicOptimizer", "Var", "analyze", "compile_program", "parse", "parse_file",
    "print_program",
]
__version__ = "0.1.0"
