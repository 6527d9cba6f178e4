"""The self-improvement loop: day (work tasks), sleep (train on what was verified), eval
(the frozen set) and gates, repeated for N cycles (`cycle`); settings in `config`,
shared state in `context`, phases in `phases`, plots in `plots`; `curriculum` is the
adaptive task sampler a day may draw its tasks with (`--curriculum`)."""
