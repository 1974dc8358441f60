"""Sample banks: many graded samples per problem, drawn once from a real model,
so that any policy can be replayed on the same draws at no model cost."""

from collm.bank.format import Bank, BankProblem, BankSample, load_bank, merge_banks

__all__ = ["Bank", "BankProblem", "BankSample", "load_bank", "merge_banks"]
