// Force-included (g++ -include) into every translation unit of a C simulation library built by
// psqs (its own AXI-stream top and an imported hls4ml top alike). hls4ml's C simulation reads its
// weights from WEIGHTS_DIR at the first call; the library is built with
// WEIGHTS_DIR=psqs_weights_dir(): the weights/ directory next to the library file, so the library
// and its weights can be moved together (into an overlay package, say).
#ifndef PSQS_WEIGHTS_DIR_H_
#define PSQS_WEIGHTS_DIR_H_
#include <dlfcn.h>
#include <string>

inline const char *psqs_weights_dir() {
    static std::string dir;
    if (dir.empty()) {
        Dl_info info;
        dladdr(reinterpret_cast<void *>(&psqs_weights_dir), &info);
        std::string self(info.dli_fname);
        dir = self.substr(0, self.rfind('/')) + "/weights";
    }
    return dir.c_str();
}
#endif
