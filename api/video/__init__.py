"""Video routes: cameras, live view (tickets, HLS, WebRTC), captures, viewing audit."""
