// Force-included (g++ -include) into the C simulation build: see psqs_weights_dir() in *_csim.cpp.
#ifndef PSQS_WEIGHTS_DIR_H_
#define PSQS_WEIGHTS_DIR_H_
const char *psqs_weights_dir();
#endif
