{
  "targets": [
    {
      "target_name": "tsvmm",
      "sources": [
        "addon/common.cc",
        "addon/kvm.cc",
        "addon/memory.cc",
        "addon/vcpu.cc",
        "addon/vcpu_thread.cc",
        "addon/eventfd.cc",
        "addon/fileio.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
    }
  ]
}
