#ifndef TDGL_VERSION_H
#define TDGL_VERSION_H
#define TDGL_VERSION "0.1.0"
#endif
