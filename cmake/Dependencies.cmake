# System dependencies, all from Debian packages installed by scripts/setup.sh.
find_package(PkgConfig REQUIRED)
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl>=7.88)
find_package(Boost 1.74 REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(nlohmann_json 3.11 REQUIRED)
find_package(cxxopts 3 REQUIRED)
find_package(Threads REQUIRED)
pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka>=2.0)
# Media: FFmpeg 5.1 libraries (demux/decode/encode with libx264, scaling).
pkg_check_modules(LIBAV REQUIRED IMPORTED_TARGET libavcodec>=59 libavformat>=59 libavutil>=57
                  libswscale>=6)
# Media ingest: GStreamer 1.22 core and appsink (plugins: base, good, ugly for x264enc, libav).
pkg_check_modules(GST REQUIRED IMPORTED_TARGET gstreamer-1.0 gstreamer-app-1.0)
# Orchestrator RPC: gRPC 1.51 and protobuf 3.21 from Debian (protoc + grpc_cpp_plugin).
pkg_check_modules(GRPCPP REQUIRED IMPORTED_TARGET grpc++>=1.51 protobuf>=3.21)
find_program(NAAP_PROTOC protoc REQUIRED)
find_program(NAAP_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
# The daemon's configuration file: yaml-cpp 0.7 (keeps line and column of every node).
pkg_check_modules(YAMLCPP REQUIRED IMPORTED_TARGET yaml-cpp>=0.7)
