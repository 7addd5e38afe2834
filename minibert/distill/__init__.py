"""Knowledge distillation: smaller students that learn from a teacher, and their comparison.

objective.py   DistillationObjective: the weighted losses between teacher and student
students.py    the students (DistilBERT, TinyBERT, ALBERT-style) and the recipes' weights
recipes.py     task-agnostic and task-specific distillation runs on the trainer
compare.py     teacher and students side by side, float32 and int8 (`minibert compare`)
report.py      compare's results as a table, Markdown, target lines and a chart
"""
