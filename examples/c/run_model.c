/*
 * run_model: run one bnnc artifact on raw float32 files.
 *
 * The program ships inside the bnnc package (runtime/run_model.c, which
 * `bnnc run` builds against foreign artifacts); this file includes it so the
 * example builds from here too:
 *
 *   gcc -O2 -include bireal.h run_model.c bireal.o -o run_model
 *
 * (see the Makefile, docs/deploying.md and the usage notes in the included file).
 */
#include "../../runtime/run_model.c"
